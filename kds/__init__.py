"""The kitchen display: station screens, the expo screen and the pickup board.

``kds.viewmodel`` holds every piece of state and logic in plain Python (no
Kivy, no MQTT, no database); the Kivy screens only bind to it.
"""
