"""Live output: frames to VMC (OSC/UDP), Unreal Live Link Face (UDP) and WebSocket clients, on time.

Lives here: ``sink`` (the contract and shared helpers), ``vmc``, ``livelink_udp``, ``websocket``, ``outputs``
(the fan-out), ``session`` (pushing chunks through a Streamer and pacing frames to real time),
``control`` (live emotion changes by WebSocket command or OSC message).
May import: ``runtime``, ``audio``, ``names``, python-osc, websockets.
Never torch, ``models`` or ``training``.
"""
