-- The inbound scope (SPEC §8): /api/webhooks/sms|email now need an API key carrying it, or a webhook signature.
-- A key that held every scope there was (send, read and admin: the first key, and keys made with the default
-- scopes) is an all-scope key and keeps that meaning, so it gets inbound too. Narrower keys do not.
UPDATE "api_keys" SET "scopes" = "scopes" || '["inbound"]'::jsonb
 WHERE "scopes" @> '["send","read","admin"]'::jsonb AND NOT "scopes" @> '["inbound"]'::jsonb;
