using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using RsCapRet.Core;
using RsCapRet.Jobs;
using RsCapRet.Pipeline;
using RsCapRet.Raster;
using RsCapRet.Storage;

namespace RsCapRet.Web;

/// <summary>Search: GET /api/search (text or a stored tile), POST /api/search/image (an uploaded image), GET /api/tiles/{id}.</summary>
public static class SearchEndpoints
{
    public const long MaxUploadBytes = 20_000_000;

    /// <summary>Pixels an uploaded image may declare before it is decoded (RSCAPRET_MAX_UPLOAD_PIXELS, default 50 MP).</summary>
    public static long MaxUploadPixels =>
        long.TryParse(Environment.GetEnvironmentVariable("RSCAPRET_MAX_UPLOAD_PIXELS"), out var p) && p > 0 ? p : 50_000_000;

    /// <summary>How long an upload's decoding may take before it is refused (413).</summary>
    public static readonly TimeSpan UploadDecodeBudget = TimeSpan.FromSeconds(10);

    public static void MapSearchEndpoints(this WebApplication app, WebContext web)
    {
        // Text (q=...) or image-to-image from a stored tile (tile=ID); same filters either way.
        app.MapGet("/api/search", async (HttpRequest req, CatalogStore store, ModelCache models, CancellationToken ct) =>
        {
            // localize=1 (issue 30): each row's hottest cells; checked before the search, added after it.
            bool localize;
            try { localize = LocalizeEndpoints.LocalizeRequested(req); }
            catch (FormatException e) { return Results.BadRequest(new { error = e.Message }); }
            var (ranked, error) = await SearchAsync(req, store, web, ct);
            if (ranked is null) return error!;
            if (localize)
            {
                var (localized, refused) = await LocalizeEndpoints.WithHotCellsAsync(req, store, models, web, ranked, ct);
                if (localized is null) return refused!;
                ranked = localized;
            }
            return web.GeoJsonResult(ranked);
        });

        // The same search as a file to keep (the map page's "download"): format=geojson or geoparquet, the rows of
        // /api/search with the same parameters (k at most 1,000, as any search), sent as an attachment.
        app.MapGet("/api/search/download", async (HttpRequest req, CatalogStore store, CancellationToken ct) =>
        {
            var format = req.Query["format"].ToString().Trim().ToLowerInvariant();
            if (format is not ("geojson" or "geoparquet"))
                return Results.BadRequest(new { error = $"format must be geojson or geoparquet, got '{req.Query["format"]}'." });
            var (ranked, error) = await SearchAsync(req, store, web, ct);
            if (ranked is null) return error!;
            var shown = ranked with { Hits = web.Shown(ranked.Hits) };
            var name = "rscapret-search-" + DateTimeOffset.UtcNow.ToString("yyyyMMdd-HHmmss", System.Globalization.CultureInfo.InvariantCulture);
            if (format == "geojson")
                return Results.File(System.Text.Encoding.UTF8.GetBytes(SearchOutput.GeoJson(shown, h => $"/api/tiles/{h.TileId}/thumbnail.png")),
                    "application/geo+json", name + ".geojson");
            using var parquet = new MemoryStream();
            Export.SearchResultExport.WriteGeoParquet(parquet, shown.Hits, shown.Offset, shown.Relevance);
            return Results.File(parquet.ToArray(), "application/vnd.apache.parquet", name + ".parquet");
        });

        // Image-to-image with an uploaded image (the request body: PNG, JPEG, TIFF...), filters in the query string.
        app.MapPost("/api/search/image", async (HttpRequest req, CatalogStore store, ModelCache models, CancellationToken ct) =>
        {
            SearchQuery query;
            try
            {
                var q = req.Query;
                query = SearchQuery.Parse(null, q["k"], q["bbox"], q["near"], q["after"], q["before"], q["exact"] == "true", textRequired: false,
                    offset: q["offset"]);
            }
            catch (FormatException e) { return Results.BadRequest(new { error = e.Message }); }
            var tooLarge = Results.Json(new { error = $"the image is larger than {MaxUploadBytes / 1_000_000} MB" }, statusCode: StatusCodes.Status413PayloadTooLarge);
            if (req.ContentLength is > MaxUploadBytes) return tooLarge;
            // The upload stays in memory and is opened from there by the image drivers only (RasterImage.ReadUploadedRgb):
            // never a path on disk, never a format that can name other files or URLs.
            using var body = new MemoryStream();
            var buffer = new byte[81920];
            int n;
            while ((n = await req.Body.ReadAsync(buffer, ct)) > 0)
            {
                if (body.Length + n > MaxUploadBytes) return tooLarge;
                body.Write(buffer, 0, n);
            }
            if (body.Length == 0) return Results.BadRequest(new { error = "the request body is empty: send the image as the body" });
            // Decoded within a time budget and the request's cancellation (a client that hangs up stops the decoding),
            // after the declared size and bands are checked.
            RgbImage image;
            using var budget = CancellationTokenSource.CreateLinkedTokenSource(ct);
            budget.CancelAfter(UploadDecodeBudget);
            try
            {
                image = RasterImage.ReadUploadedRgb(body.GetBuffer().AsSpan(0, (int)body.Length), MaxUploadPixels, maxSide: 4096,
                    maxBands: web.Limits.MaxUploadBands, ct: budget.Token);
            }
            catch (RasterException e) when (e.Message.Contains("more than the limit"))
            {
                var setting = e.Message.Contains(" bands, ") ? HostLimits.MaxUploadBandsVariable : "RSCAPRET_MAX_UPLOAD_PIXELS";
                return Results.Json(new { error = "the uploaded image " + e.Message.Replace("upload: ", "") + $" ({setting})" }, statusCode: StatusCodes.Status413PayloadTooLarge);
            }
            catch (RasterException e) { return Results.BadRequest(new { error = "the uploaded image cannot be read: " + e.Message }); }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                return Results.Json(new { error = $"the uploaded image took more than {UploadDecodeBudget.TotalSeconds:0} s to decode" }, statusCode: StatusCodes.Status413PayloadTooLarge);
            }
            var imageHits = await web.SearchWithModelAsync(store, models, encoder => encoder.EmbedImage(image), query, ct);
            return web.GeoJsonResult(RankedHits.Without(imageHits, RelevanceCalibration.NotTextNote, query.Offset));
        });

        app.MapGet("/api/tiles/{id:long}", async (long id, CatalogStore store, CancellationToken ct) =>
        {
            var tile = await store.GetTileAsync(id, ct);
            return tile is null ? Results.NotFound(new { error = $"no tile {id}" }) : Results.Text(SearchOutput.GeoJson(web.Shown([tile])), "application/geo+json");
        });
    }

    /// <summary>
    /// GET /api/search's work, shared with its download: text (q) or a stored tile's look-alikes (tile), with the
    /// filters (bbox, near, after, before, scene, latest, as_of), paging and min_relevance. The ranked rows, or the error to answer.
    /// </summary>
    private static async Task<(RankedHits? Ranked, IResult? Error)> SearchAsync(HttpRequest req, CatalogStore store, WebContext web, CancellationToken ct)
    {
        SearchQuery query;
        long? tile = null;
        var mode = HybridRanking.DefaultMode;
        var captionWeight = HybridRanking.DefaultCaptionWeight;
        try
        {
            if (!string.IsNullOrEmpty(req.Query["mode"])) mode = HybridRanking.ParseMode(req.Query["mode"]!);
            if (!string.IsNullOrEmpty(req.Query["caption_weight"]))
                captionWeight = double.TryParse(req.Query["caption_weight"], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var w) && w is >= 0 and <= 100
                    ? w : throw new FormatException($"caption_weight must be a number between 0 and 100, got '{req.Query["caption_weight"]}'.");
            var q = req.Query;
            if (!string.IsNullOrEmpty(q["tile"]) && !string.IsNullOrEmpty(q["q"])) throw new FormatException("give either q (text) or tile (a tile id), not both.");
            if (!string.IsNullOrEmpty(q["tile"])) tile = SearchQuery.ParseTileId(q["tile"]);
            query = SearchQuery.Parse(q["q"], q["k"], q["bbox"], q["near"], q["after"], q["before"], q["exact"] == "true", textRequired: tile is null,
                offset: q["offset"], minRelevance: q["min_relevance"], scene: q["scene"], latest: q["latest"], asOf: q["as_of"]);
            if (mode == RetrievalMode.Hybrid && tile is not null) throw new FormatException("mode=hybrid ranks by a query text (q): not with tile.");
            if (mode == RetrievalMode.Hybrid && query.Offset + query.K > HybridRanking.DefaultDepth)
                throw new FormatException($"offset + k must be at most {HybridRanking.DefaultDepth} in hybrid mode, got {query.Offset} + {query.K}.");
            if (mode == RetrievalMode.Hybrid && query.Filter.NewestPerPlace)
                throw new FormatException("mode=hybrid does not combine with latest (one acquisition per place).");
            if (tile is not null && query.Offset + query.K > CatalogStore.MaxRankDepth - 1)
                throw new FormatException($"offset + k must be at most {CatalogStore.MaxRankDepth - 1} for a tile's look-alikes, got {query.Offset} + {query.K}.");
        }
        catch (FormatException e) { return (null, Results.BadRequest(new { error = e.Message })); }
        if (tile is { } id)
        {
            if (await store.SearchByTileAsync(id, query.K, query.Offset, query.Filter, ct) is not { } found) return (null, Results.NotFound(new { error = $"no tile {id}" }));
            return (RankedHits.Without(found, RelevanceCalibration.NotTextNote, query.Offset), null);
        }
        // The text's vector comes from the batcher: concurrent queries share one forward pass.
        int modelId;
        float[] vector;
        try { (modelId, vector) = await web.Queries.EmbedAsync(query.Text!, ct); }
        catch (QueryQueueFullException e) { return (null, WebContext.Busy(e)); }
        catch (ModelWorkLimitException e) { return (null, Results.BadRequest(new { error = e.Message })); }
        var hits = mode == RetrievalMode.Hybrid
            ? await store.HybridSearchAsync(vector, query.Text!, query.K, query.Offset, query.Filter with { ModelId = modelId }, captionWeight, ct)
            : await store.SearchAsync(vector, query.K, query.Offset, query.Filter with { ModelId = modelId }, ct);
        // Relevance from the serving model's relevance.json (null, with a note, when it has none).
        return (RankedHits.Score(hits, vector, await web.Serving.DirectoryAsync(ct), query.Offset).AtLeast(query.MinRelevance), null);
    }
}
