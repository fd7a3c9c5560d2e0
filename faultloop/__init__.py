"""faultloop: network OSS for telecom NOCs."""
