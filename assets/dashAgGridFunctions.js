// Functions the AG Grids name in their options (dash-ag-grid reads them from
// window.dashAgGridFunctions; the grid interprets the call, nothing is eval'd).
var dagfuncs = (window.dashAgGridFunctions = window.dashAgGridFunctions || {});

// CSV export: a text cell that a spreadsheet would run as a formula gets a
// leading quote; numbers, and text that is only a signed number, stay as they
// are. The same rule as db/exports.py (tests/test_exports.py holds both to
// one table of cases).
dagfuncs.csvSafeCell = function (params) {
    var value = params.value;
    if (typeof value !== "string" || value.length === 0) {
        return value;
    }
    if ("=+-@\t\r\n\0\uff1d\uff0b\uff0d\uff20".indexOf(value.charAt(0)) === -1) {
        return value;
    }
    var plainNumber = /^[+-]?(?=[^0-9]*[0-9])[0-9.,\u00a0\u202f ]+(?:[eE][+-]?[0-9]+)?(?: ?%)?$/;
    return plainNumber.test(value) ? value : "'" + value;
};

// Numbers shown with thousands separators ("12,345"); the cell keeps its
// number (sorting, filtering and the CSV export see the plain value).
dagfuncs.thousands = function (params) {
    var value = params.value;
    // in the page's language (<html lang>): 12,345 in English, 12 345 in Russian
    var locale = document.documentElement.lang === "ru" ? "ru-RU" : "en-US";
    return typeof value === "number" && isFinite(value) ? value.toLocaleString(locale) : value;
};
