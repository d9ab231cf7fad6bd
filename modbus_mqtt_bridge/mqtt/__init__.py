"""MQTT: the topic/payload contract (pure), the paho port, the session and the publish pipeline."""
