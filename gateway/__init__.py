"""12345 intake gateway: FastAGI IVR, AMI events and draft tickets beside Asterisk."""

__version__ = "0.1.0"
