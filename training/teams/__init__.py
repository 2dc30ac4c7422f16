"""Teams: projects with members and roles, and the API tokens people reach them with."""
