using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using RsCapRet.Pipeline;
using RsCapRet.Queries;
using RsCapRet.Storage;

namespace RsCapRet.Web;

/// <summary>
/// The catalogue's scenes (archive paths and their versions, migrations/0018), as `rscapret scenes list|show|delete`
/// gives them: GET /api/scenes (a page of the list and how many match), GET /api/scenes/{id} (the rows of one version
/// id, with its ingest plan), DELETE /api/scenes/{id} (the version, the paths showing it, its tiles and the cached map
/// tiles that drew it). Scenes are named by id only, never by a path on the server; paths, errors and decisions are
/// shown through <see cref="ScenePathDisplay"/> like every other answer. DELETE is a state change: the host's basic
/// auth (when set) and <see cref="RequestOriginChecks"/> (no cross-site requests) apply to it as to every POST.
/// </summary>
public static class SceneEndpoints
{
    public const int DefaultLimit = 100;
    public const int MaxLimit = 1000;

    public static void MapSceneEndpoints(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapGet("/api/scenes", ListAsync);
        // {id} is matched as text so that a malformed id is a 400 that says so, not a bare 404; /api/scenes/{id}/classes
        // (AnalysisEndpoints) has one segment more and never meets these routes.
        endpoints.MapGet("/api/scenes/{id}", ShowAsync);
        endpoints.MapDelete("/api/scenes/{id}", DeleteAsync);
    }

    /// <summary>GET /api/scenes?limit=&amp;offset=&amp;status=&amp;bbox=&amp;after=&amp;before=&amp;all= (bbox/after/before as for /api/search).</summary>
    private static async Task<ContentHttpResult> ListAsync(HttpRequest req, CatalogStore store, WebContext web, CancellationToken ct)
    {
        var query = ParseList(req.Query);
        var (rows, total) = await store.ListScenesAsync(query, ct);
        return Json(new JsonObject
        {
            ["scenes"] = new JsonArray(rows.Select(r => (JsonNode?)Shown(web, r, withPlan: false)).ToArray()),
            ["total"] = total,
            ["limit"] = query.Limit,
            ["offset"] = query.Offset,
        });
    }

    /// <summary>GET /api/scenes/{id}: the rows of one version id, with its ingest plan.</summary>
    private static async Task<Results<ContentHttpResult, ProblemHttpResult>> ShowAsync(string id, CatalogStore store, WebContext web, CancellationToken ct)
    {
        if (SceneManagement.IdOf(id) is not { } sceneId) return BadId(id);
        var rows = await SceneManagement.FindAsync(store, sceneId.ToString(CultureInfo.InvariantCulture), ct);
        if (rows.Count == 0) return NoScene(sceneId);
        return Json(new JsonObject
        {
            ["id"] = sceneId,
            ["scenes"] = new JsonArray(rows.Select(r => (JsonNode?)Shown(web, r, withPlan: true)).ToArray()),
        });
    }

    /// <summary>DELETE /api/scenes/{id}: the version, the paths showing it, its tiles and the cached map tiles that drew it.</summary>
    private static async Task<Results<ContentHttpResult, ProblemHttpResult>> DeleteAsync(string id, CatalogStore store, WebContext web,
        TileDiskCache tileCache, CancellationToken ct)
    {
        if (SceneManagement.IdOf(id) is not { } sceneId) return BadId(id);
        var (deleted, cached) = await SceneManagement.DeleteAsync(store, sceneId.ToString(CultureInfo.InvariantCulture), tileCache, ct);
        if (deleted.Paths.Count == 0 && deleted.SceneIds.Count == 0) return NoScene(sceneId);
        return Json(new JsonObject
        {
            ["id"] = sceneId,
            ["paths"] = new JsonArray(deleted.Paths.Select(p => (JsonNode?)web.ScenePaths.Name(p)).ToArray()),
            ["scene_ids"] = new JsonArray(deleted.SceneIds.Select(s => (JsonNode?)s).ToArray()),
            ["tiles"] = deleted.Tiles,
            ["cached_map_tiles"] = cached,
        });
    }

    /// <summary>The list's filters from a query string; <see cref="FormatException"/> names the parameter at fault.</summary>
    public static SceneListQuery ParseList(IQueryCollection q)
    {
        var limit = Int(q, "limit", DefaultLimit, 1, MaxLimit);
        var offset = Int(q, "offset", 0, 0, int.MaxValue);
        string? status = null;
        if (q.TryGetValue("status", out var s) && !string.IsNullOrWhiteSpace(s.ToString()))
        {
            status = s.ToString().Trim();
            if (!SceneListQuery.Statuses.Contains(status))
                throw new FormatException($"status must be one of {string.Join(", ", SceneListQuery.Statuses)}, got '{Shorten(status)}'.");
        }
        var all = false;
        if (q.TryGetValue("all", out var a) && a.ToString() is { Length: > 0 } text)
            all = text.Trim().ToLowerInvariant() switch
            {
                "true" or "1" or "yes" => true,
                "false" or "0" or "no" => false,
                _ => throw new FormatException($"all must be true or false, got '{Shorten(text)}'."),
            };
        // The same parsing (and messages, which name bbox, after and before) as /api/search and `scenes list`.
        var filter = SearchQuery.Parse(null, null, q["bbox"], null, q["after"], q["before"], textRequired: false).Filter;
        return new SceneListQuery
        {
            All = all, Status = status, Area = filter.Area, AcquiredAfter = filter.AcquiredAfter, AcquiredBefore = filter.AcquiredBefore,
            Limit = limit, Offset = offset,
        };
    }

    private static int Int(IQueryCollection q, string name, int fallback, int min, int max)
    {
        if (!q.TryGetValue(name, out var v) || string.IsNullOrWhiteSpace(v.ToString())) return fallback;
        var text = v.ToString().Trim();
        return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n >= min && n <= max
            ? n : throw new FormatException(max == int.MaxValue
                ? $"{name} must be a whole number, {min} or more, got '{Shorten(text)}'."
                : $"{name} must be a whole number between {min} and {max}, got '{Shorten(text)}'.");
    }

    private static ProblemHttpResult BadId(string id) => ApiProblem.BadRequest($"id must be a positive scene id, got '{Shorten(id)}'.");

    private static ProblemHttpResult NoScene(long id) => ApiProblem.NotFound($"no scene {id} in the catalogue");

    /// <summary>An absolute path in a message: from a '/' that does not continue a word, URL or relative path, to a space or delimiter.</summary>
    private static readonly Regex AbsolutePath = new(@"(?<![\w.~:/-])/[^\s()'""\[\],;:]+", RegexOptions.CultureInvariant);

    /// <summary>The decisions that name another path (CatalogStore.MovePathAsync, SceneIngestor's reuse).</summary>
    private static readonly Regex OtherPath = new(@"^(?:moved from (?<path>.+)|same bytes as scene \d+ \((?<path>.+)\): shown without model work)$",
        RegexOptions.CultureInvariant | RegexOptions.Singleline);

    private static string Shorten(string s) => s.Length <= 64 ? s : s[..63] + "…";

    // The default encoder escapes <, >, & and quotes as \uXXXX: nothing in the answer is markup even to a careless reader.
    private static ContentHttpResult Json(JsonObject body) => TypedResults.Text(body.ToJsonString(), "application/json");

    /// <summary>
    /// A row as <see cref="SceneJson.ToJson"/> writes it, with the path as the host shows paths and the messages that
    /// may name files (error, decision, warnings) redacted the same way.
    /// </summary>
    private static JsonObject Shown(WebContext web, SceneListing r, bool withPlan)
    {
        var paths = web.ScenePaths;
        // The scene's own folder as ScenePathDisplay.Redact shows it, then any other absolute path left (a decision
        // names the path a version came from) by its shown name.
        string? Clean(string? message) =>
            message is null ? null : AbsolutePath.Replace(paths.Redact(message, r.Path), m => paths.Name(m.Value));
        string? decision = r.Decision;
        if (decision is not null && OtherPath.Match(decision) is { Success: true } named)   // paths may hold spaces
            decision = decision[..named.Groups["path"].Index] + paths.Name(named.Groups["path"].Value) + decision[(named.Groups["path"].Index + named.Groups["path"].Length)..];
        decision = Clean(decision);
        var shown = r with { Error = Clean(r.Error), Decision = decision, Warnings = r.Warnings.Select(w => Clean(w)!).ToList() };
        var o = SceneJson.ToJson(shown, paths.Name);
        if (withPlan)
        {
            JsonNode? plan = null;
            if (r.Plan is { } p)
                try { plan = JsonNode.Parse(p); }
                catch (JsonException) { plan = p; }
            o["plan"] = plan;
        }
        return o;
    }
}
