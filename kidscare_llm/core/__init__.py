"""Plain-Python logic of kidscare_llm: no ROS or transport imports here (a test enforces it)."""
