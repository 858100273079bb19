// Files imported `with { type: "text" }` (the embedded SQL migrations) arrive as strings.
declare module "*.sql" {
  const text: string;
  export default text;
}
