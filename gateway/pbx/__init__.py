"""Asterisk adapters: AGI/FastAGI, AMI, AudioSocket, dialplan and prompts (the development sandbox is gateway_dev)."""
