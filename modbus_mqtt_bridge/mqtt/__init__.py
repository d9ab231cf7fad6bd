"""MQTT: the topic/payload contract (pure), the paho port, and the publisher."""
