"""The caregiver console: a small web app on the robot for the adults responsible for a child.

security.py (password, sessions, CSRF, login limits), audit.py, link.py (asking the chat node
over caregiver_command), views.py and chart.py (what pages show), app.py and pages.py (the
routes), command.py (`kidscare-llm console`). nodes/console_node.py runs it as a node.
"""
