"""Everything that speaks HTTP to Sinch: auth, messages:send, the Batch API, signatures."""
