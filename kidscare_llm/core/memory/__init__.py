"""Child memory: what each child tells the robot, kept per child, recalled into prompts."""
