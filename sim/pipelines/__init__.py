"""The simulator's CI: pipelines and jobs, the .gitlab-ci.yml subset, the runner and JUnit
reports."""
