# Shared pieces of the benchmark scripts (sourced, not run): a free loopback port, and the queued backlog the
# drain measurements start from.

# A TCP port nothing listens on, picked at random above 20000.
free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 40000))
    ss -ltn "sport = :$port" | grep -q LISTEN || { echo "$port"; return; }
  done
}

# seed_backlog DATABASE_URL COUNT: COUNT queued outbound SMS (500 conversations, COUNT/500 each) with their
# delivery jobs, written in one transaction, as if accepted while no worker ran.
seed_backlog() {
  psql "$1" -q <<SQL
WITH c AS (
  INSERT INTO conversations (transport, participant_a, participant_b, key, message_count, last_activity_at)
  SELECT 'sms', '+1203555' || lpad(g::text, 4, '0'), '+18045550002', 'sms:+1203555' || lpad(g::text, 4, '0') || '<->+18045550002', 0, now()
    FROM generate_series(1, 500) g
  RETURNING id),
m AS (
  INSERT INTO messages (conversation_id, direction, channel, transport, from_addr, to_addr, body, status, timestamp)
  SELECT c.id, 'outbound', 'sms', 'sms', '+12035550000', '+18045550002', 'backlog ' || n, 'queued', now()
    FROM c, generate_series(1, $2 / 500) n
  RETURNING id)
INSERT INTO delivery_jobs (message_id) SELECT id FROM m;
UPDATE conversations SET message_count = $2 / 500;
SQL
}
