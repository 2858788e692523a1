// Clientside callbacks of the pilots page (callbacks/pilots.py names them with
// ClientsideFunction("pilots", ...)): purely visual, no request to the server.
window.dash_clientside = window.dash_clientside || {};
window.dash_clientside.pilots = {
    // The member source: a filter shows the filter fields, a file the upload box.
    // Returns [filter box style, file box style].
    sourceBoxes: function (source) {
        var file = source === "file";
        return [{display: file ? "none" : "block"}, {display: file ? "block" : "none"}];
    },
};
