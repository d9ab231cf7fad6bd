"""Write commands: parse (pure) -> check (pure) -> execute through the connection's worker."""
