"""The simulator's issues: records, notes, discussions, labels, label events, links and award
emoji."""
