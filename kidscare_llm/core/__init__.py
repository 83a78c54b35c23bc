"""Plain-Python core of kidscare_llm, grouped by domain; it never imports ROS or a transport."""
