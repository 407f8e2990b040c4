// Starts GraphiQL on emailsync's /graphql page. Adapted from the inline script of
// strawberry-graphql 0.341.2's static/graphiql.html (MIT, Copyright (c) 2018 Patrick
// Arminio), moved into a file so the page's Content-Security-Policy can forbid inline
// scripts; the js-cookie CSRF header (a Django concern) is left out.
//
// Queries and mutations go over HTTP to this same URL; subscriptions over
// graphql-transport-ws to the same URL, with the Headers pane's entries sent as the
// connection_init payload (so {"Authorization": "Bearer ..."} authenticates both).
(function () {
  "use strict";

  const EXAMPLE_QUERY = `# emailsync GraphiQL
#
# Authenticate first: open Headers (below)
# and add
#
#   {"Authorization": "Bearer <token>"}
#
# (\`emailsync dev\` prints tokens; partner
# apps send "ApiKey <key>"). It goes with
# every query and mutation, and with the
# connection_init of subscriptions.
#
# Then try:
#
#   { viewer { kind } }
#
# Run: Ctrl-Enter (or the play button)
# Complete: Ctrl-Space (or just type)
#
`;

  // URL parameters (q, variables, headers) for sharing queries.
  const parameters = {};
  for (const entry of window.location.search.slice(1).split("&")) {
    const eq = entry.indexOf("=");
    if (eq >= 0) {
      parameters[decodeURIComponent(entry.slice(0, eq))] = decodeURIComponent(
        entry.slice(eq + 1),
      );
    }
  }

  function updateURL(data) {
    Object.assign(parameters, data);
    const newSearch =
      "?" +
      Object.keys(parameters)
        .filter(function (key) {
          return Boolean(parameters[key]);
        })
        .map(function (key) {
          return encodeURIComponent(key) + "=" + encodeURIComponent(parameters[key]);
        })
        .join("&");
    history.replaceState(null, null, newSearch);
  }

  const fetchURL = window.location.href.split("?")[0];

  function httpUrlToWebSocketUrl(url) {
    const parsedURL = new URL(url);
    parsedURL.protocol = parsedURL.protocol === "http:" ? "ws:" : "wss:";
    parsedURL.hash = "";
    return parsedURL.toString();
  }

  const fetcher = GraphiQL.createFetcher({
    url: fetchURL,
    headers: {},
    subscriptionUrl: httpUrlToWebSocketUrl(fetchURL),
  });

  function GraphiQLWithExplorer() {
    const [query, setQuery] = React.useState(parameters.q || EXAMPLE_QUERY);
    const [variables, setVariables] = React.useState(parameters.variables);
    const [headers, setHeaders] = React.useState(parameters.headers);

    function onEditQuery(newQuery) {
      setQuery(newQuery);
      updateURL({ q: newQuery });
    }

    function onEditVariables(newVariables) {
      setVariables(newVariables);
      updateURL({ variables: newVariables });
    }

    function onEditHeaders(newHeaders) {
      setHeaders(newHeaders);
    }

    const explorerPlugin = GraphiQLPluginExplorer.explorerPlugin();

    return React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultEditorToolsVisibility: true,
      plugins: [explorerPlugin],
      query: query,
      variables: variables,
      headers: headers,
      onEditQuery: onEditQuery,
      onEditVariables: onEditVariables,
      onEditHeaders: onEditHeaders,
      inputValueDeprecation: true,
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: true,
    });
  }

  const root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(React.createElement(GraphiQLWithExplorer));
})();
