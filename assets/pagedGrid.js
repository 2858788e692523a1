// Server-paged grids (AG Grid's infinite row model: members search, ledger).
//
// The grid asks for one block of rows by setting its getRowsRequest property;
// a server callback answers in getRowsResponse. dash-ag-grid (35) does this
// itself, but after an answer with no rows it loses the next answer: it hands
// it over from a timer that its own re-render cancels, and an answer whose
// count is still unknown (-1) first sets the row count to -1, which leaves the
// grid empty for good. So the first time a grid is reloaded (new search,
// filter or member), this takes its datasource over: requests go out from
// here, and a clientside callback hands each answer to the block that asked.
//
// Two rules keep a grid asking:
// - A block that never hears back keeps one of the grid's two load slots for
//   good, so a block about to be dropped is told it failed first, and the
//   take-over waits until no block of dash-ag-grid's own is on its way.
// - One request per grid is on its way at a time: Dash keeps only the newest
//   call of a callback, so a second request would replace the first one and
//   the first block would never get its rows.
(function () {
    var IDLE_WAIT_MS = 5000;

    function send(id, state) {
        if (state.asked || !state.waiting.length) {
            return;
        }
        var params = state.waiting.shift();
        state.asked = params;
        // set_props always runs the callback, even for a request equal to the
        // previous one (the first block of another search)
        window.dash_clientside.set_props(id, {
            getRowsRequest: {
                startRow: params.startRow,
                endRow: params.endRow,
                sortModel: params.sortModel || [],
                filterModel: params.filterModel || {},
            },
        });
    }

    function release(state) {
        var params = (state.asked ? [state.asked] : []).concat(state.waiting);
        state.asked = null;
        state.waiting = [];
        params.forEach(function (p) {
            p.failCallback();
        });
    }

    // dash-ag-grid's datasource becomes ours, in place: replacing it would drop
    // its blocks without an answer
    function takeOver(id, ds) {
        var state = {asked: null, waiting: []};
        ds.destroy(); // dash-ag-grid forgets its block and stops answering
        ds.pagedGrid = state;
        ds.getRows = function (params) {
            state.waiting.push(params);
            send(id, state);
        };
        ds.destroy = function () {
            release(state);
        };
    }

    function busy(api) {
        var blocks = api.getCacheBlockState() || {};
        return Object.keys(blocks).some(function (k) {
            return blocks[k].pageStatus === "loading";
        });
    }

    function reloadWhenIdle(id, api, since) {
        if (api.isDestroyed()) {
            return; // the page was left meanwhile
        }
        var ds = api.getGridOption("datasource");
        if (!(ds && ds.pagedGrid)) {
            var waited = Date.now() - since;
            if (!ds || (busy(api) && waited < IDLE_WAIT_MS)) {
                window.setTimeout(function () {
                    reloadWhenIdle(id, api, since);
                }, 50);
                return;
            }
            takeOver(id, ds);
        }
        release(ds.pagedGrid);
        api.purgeInfiniteCache();
    }

    var ns = (window.dash_clientside = window.dash_clientside || {});
    ns.pagedGrid = {
        // ask the grid for its rows again, from the first block
        reload: function (_a, _b, id) {
            if (window.dash_ag_grid && window.dash_ag_grid.getApiAsync) {
                var since = Date.now();
                window.dash_ag_grid.getApiAsync(id).then(function (api) {
                    reloadWhenIdle(id, api, since);
                });
            }
            return Date.now();
        },
        // hand the server's answer to the block that asked for it
        answer: function (response, id) {
            var api = window.dash_ag_grid && window.dash_ag_grid.getApi(id);
            var ds = api && api.getGridOption("datasource");
            var state = ds && ds.pagedGrid;
            if (!response || !state || !state.asked) {
                return window.dash_clientside.no_update;
            }
            var params = state.asked;
            state.asked = null;
            params.successCallback(response.rowData || [], response.rowCount);
            send(id, state);
            return Date.now();
        },
    };
})();
