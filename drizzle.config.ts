import { defineConfig } from "drizzle-kit";

// Generates SQL migrations into drizzle/ from src/db/schema.ts; `bun run db:generate` also refreshes
// drizzle/manifest.ts, which embeds them into the binary.
export default defineConfig({
  dialect: "postgresql",
  schema: "./src/db/schema.ts",
  out: "./drizzle",
});
