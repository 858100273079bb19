-- A key's own request budget (issue 21): requests per minute, replacing MESSAGING_RATE_LIMIT_PER_KEY_PER_MIN for
-- this key; NULL keeps the setting. Set by `messaging keys create --rate-limit` and `messaging keys update`.
ALTER TABLE "api_keys" ADD COLUMN "rate_limit_per_min" integer;--> statement-breakpoint
ALTER TABLE "api_keys" ADD CONSTRAINT "api_keys_rate_limit_per_min_positive" CHECK ("rate_limit_per_min" IS NULL OR "rate_limit_per_min" > 0);
