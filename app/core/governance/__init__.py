"""Users, signed approvals, the signed packet and portable project archives."""
