"""The calls feature: the FastAGI server and the IVR per call (``handler.CallHandler``), the
AGI round-trip figures (``metrics``), and the AMI events that complete a call's row
(hang-up, queue, agent), wired by ``plugin.setup(app, deps)``. Nothing is imported here,
so importing the package stays cheap."""
