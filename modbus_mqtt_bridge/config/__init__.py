"""Config: the model (frozen dataclasses), loading (YAML / legacy JSON) and validation."""
