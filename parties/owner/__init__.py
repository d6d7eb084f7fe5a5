"""The owner's daemon (``mpc-party serve``): it holds an agency's registers and answers the
requests its policy allows, one handler module per protocol."""
