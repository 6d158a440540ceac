"""An example third-party DeployBench plugin."""
