"""Asterisk adapters: AGI/FastAGI, AMI, AudioSocket, dialplan and sandbox."""
