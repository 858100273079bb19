CREATE TABLE "write_receipts" (
	"token" uuid PRIMARY KEY NOT NULL,
	"result" jsonb,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
