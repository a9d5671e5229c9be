DROP TABLE tenant_models;
DROP TABLE conversation_messages;
DROP TABLE conversations;
DROP TABLE usage_records;
DROP TABLE usage_periods;
DROP TABLE budgets;
DROP TABLE provider_keys;
