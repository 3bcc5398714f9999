using RsCapRet.Storage;

namespace RsCapRet.Queries;

/// <summary>
/// Runs a <see cref="ChangeQuery"/>: resolves the scenes it names, embeds the toward text with the scenes' model, and
/// turns inputs that cannot pair into notes beside an empty result (the command line and the API answer alike). With a
/// toward text, each pair's after tile carries its relevance to the text (from the text's model's calibration).
/// </summary>
public static class ChangeRunner
{
    /// <param name="embedText">the [RET] vector of a text, the catalogue id of the model that made it and that model's
    /// folder (its relevance.json scores the after tiles); called only when the query has a toward text</param>
    public static async Task<RankedChanges> RunAsync(CatalogStore store, ChangeQuery query,
        Func<string, Task<(int ModelId, float[] Vector, string? ModelDirectory)>>? embedText, CancellationToken ct)
    {
        if (query.Toward is null) return RankedChanges.Plain(await PairAsync(store, query, null, null, ct));
        var (modelId, toward, directory) = await (embedText ?? throw new ArgumentNullException(nameof(embedText)))(query.Toward);
        return RankedChanges.Score(await PairAsync(store, query, modelId, toward, ct), query.Toward, toward, directory);
    }

    private static async Task<ChangeResult> PairAsync(CatalogStore store, ChangeQuery query, int? modelId, float[]? toward, CancellationToken ct)
    {
        if (!query.ByScenes)
            return await store.ChangesAsync(new ChangeRequest(null, null, query.Area, query.BeforeRange, query.AfterRange, query.K, query.MinIou, modelId, toward), ct);

        // A path several models show (a reindex with a new model): the version of the toward text's model, when it has one.
        var before = (modelId is null ? null : await store.FindCompletedSceneAsync(query.BeforeScene!, modelId, ct)) ?? await store.FindCompletedSceneAsync(query.BeforeScene!, null, ct);
        var after = (modelId is null ? null : await store.FindCompletedSceneAsync(query.AfterScene!, modelId, ct)) ?? await store.FindCompletedSceneAsync(query.AfterScene!, null, ct);
        var notes = new List<string>();
        if (before is null) notes.Add($"before: no ingested scene '{query.BeforeScene}' in the catalogue (ingest it first)");
        if (after is null) notes.Add($"after: no ingested scene '{query.AfterScene}' in the catalogue (ingest it first)");
        if (notes.Count > 0) return new ChangeResult([], notes);
        if (before!.Id == after!.Id) throw new FormatException($"before and after are the same scene ({before.Id}).");
        if (modelId is { } m && (before.ModelId != m || after.ModelId != m))
            return new ChangeResult([], [$"the toward text is embedded by model {m}, but the scenes were encoded by model {before.ModelId} and {after.ModelId}: pass the --model that ingested them"]);
        return await store.ChangesAsync(new ChangeRequest(before.Id, after.Id, query.Area, null, null, query.K, query.MinIou, Toward: toward), ct);
    }
}
