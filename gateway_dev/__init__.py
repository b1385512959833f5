"""The development and test harness: the Asterisk sandbox, simulated calls, the
end-to-end system and the test-only HTTP routes. Not part of the production gateway
(``gateway``): nothing under ``gateway/`` imports it at module level, and a deployment
may leave it out."""
