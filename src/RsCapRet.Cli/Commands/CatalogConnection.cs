using System.CommandLine;
using RsCapRet.Storage;

namespace RsCapRet.Cli.Commands;

/// <summary>What the catalogue-management commands (`scenes`, `models`) share: a migrated catalogue and `--format`.</summary>
internal static class CatalogConnection
{
    /// <summary>The catalogue of --db / RSCAPRET_DB, migrated; its data source joins <paramref name="owned"/> for the caller to dispose.</summary>
    public static async Task<CatalogStore> OpenAsync(ParseResult parse, List<IAsyncDisposable> owned, CancellationToken ct)
    {
        var cs = RsCapRetDatabase.ResolveConnectionString(parse.GetValue(DbCommands.DbOption));
        await MigrationRunner.ApplyAsync(cs, ct: ct);
        var ds = await RsCapRetDatabase.OpenAsync(cs, ct: ct);
        owned.Add(ds);
        return new CatalogStore(ds);
    }

    public static Option<string> FormatOption()
    {
        var format = new Option<string>("--format") { Description = "table or json", DefaultValueFactory = _ => "table" };
        format.AcceptOnlyFromAmong("table", "json");
        return format;
    }
}
