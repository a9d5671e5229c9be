DROP TABLE reimbursements;
DROP TABLE mail_messages;
DROP TABLE oauth_states;
