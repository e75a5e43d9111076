"""The PM role: plans, their checks and the plan notes the developer executes."""
