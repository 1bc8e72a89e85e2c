"""What happened, kept and told: one history row per change of a loan or hold (`history`), the same
changes published as CloudEvents (`domain_events`), and their AsyncAPI document (`asyncapi`)."""
