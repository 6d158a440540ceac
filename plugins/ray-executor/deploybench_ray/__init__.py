"""DeployBench executor plugin for Ray."""
