"""Simulated Microsoft services: identity platform (OAuth2/OIDC), Graph mail,
change notifications (webhooks) and Graph's throttling behaviour."""
