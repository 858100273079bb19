CREATE TABLE "provider_credentials" (
	"provider" text NOT NULL,
	"name" text NOT NULL,
	"version" integer NOT NULL,
	"key_id" text NOT NULL,
	"envelope" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"verify_until" timestamp with time zone,
	CONSTRAINT "provider_credentials_provider_name_version_pk" PRIMARY KEY("provider","name","version"),
	CONSTRAINT "provider_credentials_version_positive" CHECK ("provider_credentials"."version" >= 1)
);
