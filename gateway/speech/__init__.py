"""The speech feature: what callers say, recognised while they call.

``service.Speech`` runs the AudioSocket server and the :class:`gateway.pbx.speech.Listener`
at once and loads the recogniser's models in the background; ``recovery`` transcribes
the recordings of tickets whose caller could not be recognised live; ``plugin`` wires
them into the application (``setup(app, deps)``). The recogniser itself is
:mod:`gateway.asr`. Nothing is imported here, so importing the package stays cheap.
"""
