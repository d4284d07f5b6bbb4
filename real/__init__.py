"""The real-robot stack: a ROS 2 package (`real`) for cube picking on a Franka with franky (issue 6)."""
