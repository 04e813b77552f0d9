"""The notifications domain: the WhatsApp outbox, its providers' outcomes and the sweep that sends."""
