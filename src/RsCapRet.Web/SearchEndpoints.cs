using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using RsCapRet.Core;
using RsCapRet.Inference;
using RsCapRet.Queries;
using RsCapRet.Raster;
using RsCapRet.Storage;

namespace RsCapRet.Web;

/// <summary>Search: GET /api/search (text or a stored tile), POST /api/search/image (an uploaded image), GET /api/tiles/{id}.</summary>
public static class SearchEndpoints
{
    public const long MaxUploadBytes = 20_000_000;

    /// <summary>Pixels an uploaded image may declare before it is decoded (RSCAPRET_MAX_UPLOAD_PIXELS, default 50 MP).</summary>
    public static long MaxUploadPixels => WebOptions.FromEnvironment().MaxUploadPixels;

    /// <summary>How long an upload's decoding may take before it is refused (413).</summary>
    public static readonly TimeSpan UploadDecodeBudget = TimeSpan.FromSeconds(10);

    public static void MapSearchEndpoints(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapGet("/api/search", SearchAsync);
        endpoints.MapGet("/api/search/download", DownloadAsync);
        endpoints.MapPost("/api/search/image", SearchByImageAsync);
        endpoints.MapGet("/api/tiles/{id:long}", GetTileAsync);
    }

    /// <summary>
    /// GET /api/search: text (q=...) or image-to-image from a stored tile (tile=ID); same filters either way. With
    /// localize=1 (issue 30) each row's hottest cells, checked before the search and added after it.
    /// </summary>
    private static async Task<Results<ContentHttpResult, ProblemHttpResult>> SearchAsync(HttpRequest req, CatalogStore store, ModelCache models,
        WebContext web, CancellationToken ct)
    {
        var localize = LocalizeEndpoints.LocalizeRequested(req);
        var (ranked, problem) = await RankAsync(req, store, web, ct);
        if (ranked is null) return problem!;
        if (localize)
        {
            var (localized, refused) = await LocalizeEndpoints.WithHotCellsAsync(req, store, models, web, ranked, ct);
            if (localized is null) return refused!;
            ranked = localized;
        }
        return web.GeoJsonResult(ranked);
    }

    /// <summary>
    /// GET /api/search/download: the same search as a file to keep (the map page's "download"): format=geojson or
    /// geoparquet, the rows of /api/search with the same parameters (k at most 1,000, as any search), sent as an attachment.
    /// </summary>
    private static async Task<Results<FileContentHttpResult, ProblemHttpResult>> DownloadAsync(HttpRequest req, CatalogStore store, WebContext web,
        CancellationToken ct)
    {
        var format = req.Query["format"].ToString().Trim().ToLowerInvariant();
        if (format is not ("geojson" or "geoparquet"))
            return ApiProblem.BadRequest($"format must be geojson or geoparquet, got '{req.Query["format"]}'.");
        var (ranked, problem) = await RankAsync(req, store, web, ct);
        if (ranked is null) return problem!;
        var shown = ranked with { Hits = web.Shown(ranked.Hits) };
        var name = "rscapret-search-" + DateTimeOffset.UtcNow.ToString("yyyyMMdd-HHmmss", System.Globalization.CultureInfo.InvariantCulture);
        if (format == "geojson")
            return TypedResults.File(System.Text.Encoding.UTF8.GetBytes(SearchOutput.GeoJson(shown, h => $"/api/tiles/{h.TileId}/thumbnail.png")),
                "application/geo+json", name + ".geojson");
        using var parquet = new MemoryStream();
        Export.SearchResultExport.WriteGeoParquet(parquet, shown.Hits, shown.Offset, shown.Relevance);
        return TypedResults.File(parquet.ToArray(), "application/vnd.apache.parquet", name + ".parquet");
    }

    /// <summary>
    /// POST /api/search/image: image-to-image with an uploaded image (PNG, JPEG, TIFF, WebP: the request body, or the
    /// first file of a multipart form), the filters of GET /api/search in the query string.
    /// </summary>
    private static async Task<Results<ContentHttpResult, ProblemHttpResult>> SearchByImageAsync(HttpRequest req, CatalogStore store, ModelCache models,
        WebContext web, CancellationToken ct)
    {
        var q = req.Query;
        var query = SearchQuery.Parse(null, q["k"], q["bbox"], q["near"], q["after"], q["before"], q["exact"] == "true", textRequired: false,
            offset: q["offset"], scene: q["scene"], latest: q["latest"], asOf: q["as_of"]);
        var (upload, refused) = await ReadUploadAsync(req, ct);
        if (refused is not null) return refused;
        // Decoded within a time budget and the request's cancellation (a client that hangs up stops the decoding),
        // after the declared size and bands are checked.
        RgbImage image;
        using var budget = CancellationTokenSource.CreateLinkedTokenSource(ct);
        budget.CancelAfter(UploadDecodeBudget);
        try
        {
            image = RasterImage.ReadUploadedRgb(upload, MaxUploadPixels, maxSide: 4096,
                maxBands: web.Limits.MaxUploadBands, ct: budget.Token);
        }
        catch (RasterException e) when (e.Message.Contains("more than the limit"))
        {
            var setting = e.Message.Contains(" bands, ") ? HostLimits.MaxUploadBandsVariable : "RSCAPRET_MAX_UPLOAD_PIXELS";
            return ApiProblem.Result(StatusCodes.Status413PayloadTooLarge, "the uploaded image " + e.Message.Replace("upload: ", "") + $" ({setting})");
        }
        catch (RasterException e) { return ApiProblem.BadRequest("the uploaded image cannot be read: " + e.Message); }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return ApiProblem.Result(StatusCodes.Status413PayloadTooLarge, $"the uploaded image took more than {UploadDecodeBudget.TotalSeconds:0} s to decode");
        }
        var imageHits = await web.SearchWithModelAsync(store, models, encoder => encoder.EmbedImage(image), query, ct);
        return web.GeoJsonResult(RankedHits.Without(imageHits, RelevanceCalibration.NotTextNote, query.Offset));
    }

    /// <summary>
    /// The uploaded image's bytes, at most <see cref="MaxUploadBytes"/>, kept in memory: the request body, or the first
    /// file of a multipart/form-data body (an HTML form, `curl -F image=@scene.png`); other form fields are skipped.
    /// </summary>
    private static async Task<(ArraySegment<byte> Upload, ProblemHttpResult? Problem)> ReadUploadAsync(HttpRequest req, CancellationToken ct)
    {
        var tooLarge = ApiProblem.Result(StatusCodes.Status413PayloadTooLarge, $"the image is larger than {MaxUploadBytes / 1_000_000} MB");
        // Only multipart/form-data is read as a form; any other body is the image (curl --data-binary labels it x-www-form-urlencoded).
        var multipart = Microsoft.Net.Http.Headers.MediaTypeHeaderValue.TryParse(req.ContentType, out var type)
                        && type.MediaType.Equals("multipart/form-data", StringComparison.OrdinalIgnoreCase);
        using var body = new MemoryStream();
        try
        {
            var source = req.Body;
            if (multipart)
            {
                var boundary = Microsoft.Net.Http.Headers.HeaderUtilities.RemoveQuotes(type!.Boundary).Value;
                if (string.IsNullOrEmpty(boundary))
                    return (default, ApiProblem.BadRequest("a multipart/form-data upload needs a boundary in its Content-Type (curl -F image=@scene.png sets one), or send the image itself as the body"));
                // The form's overhead is small; the file itself is held to the upload limit below.
                if (req.ContentLength is > MaxUploadBytes + 1_000_000) return (default, tooLarge);
                var reader = new Microsoft.AspNetCore.WebUtilities.MultipartReader(boundary, req.Body) { BodyLengthLimit = MaxUploadBytes + 1 };
                Stream? file = null;
                while (file is null && await reader.ReadNextSectionAsync(ct) is { } section)
                    if (Microsoft.Net.Http.Headers.ContentDispositionHeaderValue.TryParse(section.ContentDisposition, out var disposition)
                        && (disposition.FileName.HasValue || disposition.FileNameStar.HasValue))
                        file = section.Body;
                if (file is null) return (default, ApiProblem.BadRequest("the form has no file field: send the image as a file (curl -F image=@scene.png)"));
                source = file;
            }
            else if (req.ContentLength is > MaxUploadBytes) return (default, tooLarge);
            var buffer = new byte[81920];
            int n;
            while ((n = await source.ReadAsync(buffer, ct)) > 0)
            {
                if (body.Length + n > MaxUploadBytes) return (default, tooLarge);
                body.Write(buffer, 0, n);
            }
        }
        catch (Exception e) when (multipart && e is InvalidDataException or IOException)
        {
            // A form cut off before its closing boundary, or a part over the form reader's limit.
            return (default, ApiProblem.BadRequest("the multipart form cannot be read: " + e.Message));
        }
        if (body.Length == 0)
            return (default, ApiProblem.BadRequest(multipart ? "the form's file is empty" : "the request body is empty: send the image as the body"));
        // The stream's own buffer, not a copy: disposing a MemoryStream leaves it readable.
        return (new ArraySegment<byte>(body.GetBuffer(), 0, (int)body.Length), null);
    }

    /// <summary>GET /api/tiles/{id}: one stored tile as a GeoJSON feature.</summary>
    private static async Task<Results<ContentHttpResult, ProblemHttpResult>> GetTileAsync(long id, CatalogStore store, WebContext web, CancellationToken ct)
    {
        var tile = await store.GetTileAsync(id, ct);
        return tile is null ? ApiProblem.NotFound($"no tile {id}") : TypedResults.Text(SearchOutput.GeoJson(web.Shown([tile])), "application/geo+json");
    }

    /// <summary>
    /// GET /api/search's work, shared with its download: text (q) or a stored tile's look-alikes (tile), with the
    /// filters (bbox, near, after, before, scene, latest, as_of), paging and min_relevance. The ranked rows, or the
    /// problem to answer; a bad parameter is a <see cref="FormatException"/> (a 400 through <see cref="BadInputFilter"/>).
    /// </summary>
    private static async Task<(RankedHits? Ranked, ProblemHttpResult? Problem)> RankAsync(HttpRequest req, CatalogStore store, WebContext web, CancellationToken ct)
    {
        long? tile = null;
        var mode = HybridRanking.DefaultMode;
        var captionWeight = HybridRanking.DefaultCaptionWeight;
        if (!string.IsNullOrEmpty(req.Query["mode"])) mode = HybridRanking.ParseMode(req.Query["mode"]!);
        if (!string.IsNullOrEmpty(req.Query["caption_weight"]))
            captionWeight = double.TryParse(req.Query["caption_weight"], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var w) && w is >= 0 and <= 100
                ? w : throw new FormatException($"caption_weight must be a number between 0 and 100, got '{req.Query["caption_weight"]}'.");
        var q = req.Query;
        if (!string.IsNullOrEmpty(q["tile"]) && !string.IsNullOrEmpty(q["q"])) throw new FormatException("give either q (text) or tile (a tile id), not both.");
        if (!string.IsNullOrEmpty(q["tile"])) tile = SearchQuery.ParseTileId(q["tile"]);
        var query = SearchQuery.Parse(q["q"], q["k"], q["bbox"], q["near"], q["after"], q["before"], q["exact"] == "true", textRequired: tile is null,
            offset: q["offset"], minRelevance: q["min_relevance"], scene: q["scene"], latest: q["latest"], asOf: q["as_of"]);
        if (mode == RetrievalMode.Hybrid && tile is not null) throw new FormatException("mode=hybrid ranks by a query text (q): not with tile.");
        if (mode == RetrievalMode.Hybrid && query.Offset + query.K > HybridRanking.DefaultDepth)
            throw new FormatException($"offset + k must be at most {HybridRanking.DefaultDepth} in hybrid mode, got {query.Offset} + {query.K}.");
        if (mode == RetrievalMode.Hybrid && query.Filter.NewestPerPlace)
            throw new FormatException("mode=hybrid does not combine with latest (one acquisition per place).");
        if (tile is not null && query.Offset + query.K > CatalogStore.MaxRankDepth - 1)
            throw new FormatException($"offset + k must be at most {CatalogStore.MaxRankDepth - 1} for a tile's look-alikes, got {query.Offset} + {query.K}.");
        if (tile is { } id)
        {
            if (await store.SearchByTileAsync(id, query.K, query.Offset, query.Filter, ct) is not { } found) return (null, ApiProblem.NotFound($"no tile {id}"));
            return (RankedHits.Without(found, RelevanceCalibration.NotTextNote, query.Offset), null);
        }
        // The text's vector comes from the batcher: concurrent queries share one forward pass. A full queue is a 503
        // (the host's middleware), a text over the token limit a 400 (BadInputFilter).
        var (modelId, vector, modelDirectory) = await web.Queries.EmbedWithModelAsync(query.Text!, ct);
        var hits = mode == RetrievalMode.Hybrid
            ? await store.HybridSearchAsync(vector, query.Text!, query.K, query.Offset, query.Filter with { ModelId = modelId }, captionWeight, ct)
            : await store.SearchAsync(vector, query.K, query.Offset, query.Filter with { ModelId = modelId }, ct);
        // Relevance from the relevance.json of the model that made the vector (null, with a note, when it has none).
        return (RankedHits.Score(hits, vector, modelDirectory, query.Offset).AtLeast(query.MinRelevance), null);
    }
}
