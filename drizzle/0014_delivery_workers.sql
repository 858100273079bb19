-- The delivery workers that hold claims (issue 19/20): a claim's holder is a row here, and a claim is taken over
-- only once its holder is proved gone (no session holds its advisory lock, and it has not been seen for the
-- takeover bound), not when a lease runs out. See src/delivery/liveness.ts.
CREATE TABLE "delivery_workers" (
	"id" text PRIMARY KEY NOT NULL,
	"lock_key" integer NOT NULL,
	"backend_pid" integer,
	"connected_at" timestamp with time zone DEFAULT now() NOT NULL,
	"seen_at" timestamp with time zone DEFAULT now() NOT NULL
);
