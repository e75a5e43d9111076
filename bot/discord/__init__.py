"""Everything that imports discord.py: the client, cogs, views, cards and the Discord surface."""
