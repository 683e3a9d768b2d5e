import { USERS } from "./gateway-config.js";

export type User = keyof typeof USERS;

export const creds = (user: User) => `${user}:${USERS[user]}`;
export const basic = (user: User) => `Basic ${Buffer.from(creds(user)).toString("base64")}`;
