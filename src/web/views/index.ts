// The registry browser's pages: each takes its view model and returns a complete HTML document.
export { renderRepositoryList } from "./repository-list.js";
export { renderTagList } from "./tag-list.js";
export { renderTagDetails } from "./tag-details.js";
export { renderLogin } from "./login.js";
export { renderError } from "./error.js";
export { renderDeleteConfirm } from "./delete-confirm.js";
