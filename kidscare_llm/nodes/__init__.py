"""ROS-facing adapters: one node per file, each a thin shell around one core class."""
