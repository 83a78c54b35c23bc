"""What a caregiver sets and asks for, in plain Python: shared by the chat node and the console.

rules.py (quiet hours, daily talk limit), usage.py (talk time per day), data.py (export,
delete a child, retention), commands.py (the caregiver_command protocol the chat node serves).
"""
