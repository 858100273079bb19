import { Elysia } from "elysia";
import { z } from "zod";

export const healthModel = new Elysia({ name: "health.model" }).model({
  "health.ok": z.object({ status: z.literal("ok") }),
});
