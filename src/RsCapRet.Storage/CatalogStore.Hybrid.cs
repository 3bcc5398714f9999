using Npgsql;
using NpgsqlTypes;
using Pgvector;
using RsCapRet.Core;

namespace RsCapRet.Storage;

/// <summary>Hybrid search (issue 31): the vector ranking fused with a caption text match, rscapret_search_hybrid_page.</summary>
public sealed partial class CatalogStore
{
    /// <summary>
    /// Rows <paramref name="offset"/> + 1 to <paramref name="offset"/> + <paramref name="k"/> of the hybrid ranking:
    /// the vector ranking's first <see cref="HybridRanking.DefaultDepth"/> rows re-ranked by reciprocal rank fusion
    /// with the match between <paramref name="text"/> and their captions (migrations/0023; <see cref="HybridRanking"/>
    /// is its C# twin). Distances stay the vector side's. Offset + k at most the depth.
    /// </summary>
    public async Task<IReadOnlyList<TileHit>> HybridSearchAsync(float[] query, string text, int k, int offset, SearchFilter? filter,
        double captionWeight = HybridRanking.DefaultCaptionWeight, CancellationToken ct = default)
    {
        filter ??= new SearchFilter();
        if (query.Length != SharedSpace.Dimensions) throw new ArgumentException($"The query vector has {query.Length} dimensions; {SharedSpace.Dimensions} expected.", nameof(query));
        if (k is < 1 or > 1000) throw new ArgumentOutOfRangeException(nameof(k), k, "k must be between 1 and 1000.");
        if (captionWeight is < 0 or > 100 || double.IsNaN(captionWeight))
            throw new ArgumentOutOfRangeException(nameof(captionWeight), captionWeight, "caption weight must be in [0, 100].");
        CheckOffset(k, offset, HybridRanking.DefaultDepth);   // the fusion re-ranks the vector ranking's first DefaultDepth rows
        if (filter.NewestPerPlace)
            throw new ArgumentException("hybrid mode does not combine with one acquisition per place; use the vector mode for that.", nameof(filter));
        await using var cmd = ReadSource.CreateCommand("""
            SELECT h.tile_id, h.scene_id, h.scene_path, h.grid_row, h.grid_col, h.px_x, h.px_y, h.px_width, h.px_height,
                   h.footprint, h.caption, h.distance, h.acquired_at, s.out_of_range
              FROM rscapret_search_hybrid_page(query => $1, k => $2, area => $3, near => $4, radius_m => $5,
                                               acquired_after => $6, acquired_before => $7, model => $8, scene => $9,
                                               exact => $10, query_text => $11, "offset" => $12, caption_weight => $13,
                                               rrf_k => $14, depth => $15) h
              JOIN scenes s ON s.id = h.scene_id
             ORDER BY h.fused_score DESC, h.distance, h.tile_id
            """);
        cmd.Parameters.Add(new() { Value = new Vector(query) });
        AddFilterParameters(cmd, k, filter, withModel: true);
        cmd.Parameters.Add(new() { Value = text, NpgsqlDbType = NpgsqlDbType.Text });
        cmd.Parameters.Add(new() { Value = offset });
        cmd.Parameters.Add(new() { Value = captionWeight });
        cmd.Parameters.Add(new() { Value = HybridRanking.DefaultRrfK });
        cmd.Parameters.Add(new() { Value = HybridRanking.DefaultDepth });
        return await ReadHitsAsync(cmd, 0, ct);
    }

    /// <summary>
    /// The caption text-match score (rscapret_caption_word_share: the share of the text's words the caption holds)
    /// of every text against every caption, [texts, captions] — what the hybrid ranking's text side orders by, for <c>evaluate</c> to
    /// measure the product's path without a catalogue. Each caption is parsed once.
    /// </summary>
    public async Task<double[,]> CaptionScoresAsync(IReadOnlyList<string> texts, IReadOnlyList<string> captions, CancellationToken ct = default)
    {
        var scores = new double[texts.Count, captions.Count];
        await using var cmd = DataSource.CreateCommand("""
            WITH c AS MATERIALIZED (SELECT j, rscapret_caption_words(caption) AS words
                                      FROM unnest($2::text[]) WITH ORDINALITY AS c(caption, j)),
                 q AS MATERIALIZED (SELECT i, rscapret_caption_words(text) AS words
                                      FROM unnest($1::text[]) WITH ORDINALITY AS q(text, i))
            SELECT q.i - 1, c.j - 1, rscapret_caption_word_share(c.words, q.words)
              FROM q CROSS JOIN c
             WHERE c.words && q.words
            """);
        cmd.Parameters.Add(new() { Value = texts.ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
        cmd.Parameters.Add(new() { Value = captions.ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
        cmd.CommandTimeout = 0;   // a whole val split: minutes on a busy machine, cancelled by ct
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct)) scores[r.GetInt64(0), r.GetInt64(1)] = r.GetDouble(2);
        return scores;
    }
}
