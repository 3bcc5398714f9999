using System.CommandLine;
using System.CommandLine.Completions;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Text.RegularExpressions;

namespace RsCapRet.Cli.Commands;

/// <summary>
/// A command line that does not parse is reported as one line, `--option: problem`, or `rscapret: problem` where no
/// option is involved, instead of System.CommandLine's messages (argument names, .NET type names, several lines)
/// followed by the whole help text. The line is built from the parse result's structure, not by rewording the
/// library's (localised) messages; those are only the fallback, folded onto one line.
/// </summary>
public static partial class UsageErrors
{
    /// <summary>The program's name in messages (the root command's own name is the host process's, e.g. testhost).</summary>
    public const string Program = "rscapret";

    /// <summary>The one line to print, or null when the command line is fine (or asks for help, which clears errors).</summary>
    public static string? Describe(ParseResult parse)
    {
        if (parse.Action is { ClearsParseErrors: true }) return null;
        var command = parse.CommandResult;
        var see = $"(see {CommandPath(command)} --help)";
        if (OptionLikeArgument(parse) is { } unknownOption) return $"{unknownOption}: unknown option {see}";
        if (parse.Errors.Count == 0) return null;

        if (parse.UnmatchedTokens.Count > 0)
        {
            var token = parse.UnmatchedTokens[0];
            if (LooksLikeOption(token)) return $"{token}: unknown option {see}";
            return NeedsSubcommand(command.Command)
                ? $"{Program}: unknown command '{token}' {see}"
                : $"{Program}: unexpected argument '{token}' {see}";
        }

        foreach (var error in parse.Errors)
        {
            switch (error.SymbolResult)
            {
                case OptionResult option:
                    return OptionProblem(option, error.Message);
                case ArgumentResult { Parent: OptionResult option }:
                    return OptionProblem(option, error.Message);
            }
        }

        // Required options and arguments that were not given at all have no result of their own to point at.
        for (var c = command; c is not null; c = c.Parent as CommandResult)
            foreach (var option in c.Command.Options.Where(o => o.Required && parse.GetResult(o) is null or { Implicit: true }))
                return Required(option);
        foreach (var argument in command.Command.Arguments)
            if (argument.Arity.MinimumNumberOfValues > (parse.GetResult(argument)?.Tokens.Count ?? 0))
                return $"{Program}: {CommandName(command)} needs <{argument.Name}> {see}";
        if (NeedsSubcommand(command.Command))
            return $"{Program}: {(command.Parent is null ? "give a command" : $"{CommandName(command)} needs a command")}: " +
                   $"{string.Join(", ", command.Command.Subcommands.Where(s => !s.Hidden).Select(s => s.Name))} {see}";

        var first = parse.Errors[0];
        return first.SymbolResult is ArgumentResult a
            ? $"{Program}: <{a.Argument.Name}>: {OneLine(first.Message)}"
            : $"{Program}: {OneLine(first.Message)}";
    }

    private static string OptionProblem(OptionResult result, string message)
    {
        var option = result.Option;
        var name = result.IdentifierToken?.Value ?? option.Name;
        var values = result.Tokens.Select(t => t.Value).ToList();
        var type = Nullable.GetUnderlyingType(option.ValueType) ?? option.ValueType;
        // A required option that was not given has a result of its own, with no token that named it.
        if (option.Required && result.IdentifierTokenCount == 0) return Required(option);
        if (values.Count < option.Arity.MinimumNumberOfValues) return $"{name}: needs a value";
        if (values.FirstOrDefault(v => !Converts(v, type)) is { } bad) return $"{name}: '{bad}' is not {Kind(type)}";
        if (type == typeof(string) && Choices(option) is { Count: > 0 } choices && values.FirstOrDefault(v => !choices.Contains(v)) is { } other)
            return $"{name}: '{other}' is not one of: {string.Join(", ", choices)}";
        return $"{name}: {OneLine(message)}";
    }

    private static string Required(Option option) =>
        $"{option.Name}: required{(option.Description is { Length: > 0 } d ? $" ({Sentence(d)})" : "")}";

    /// <summary>
    /// A positional argument that looks like an option (`search --limit 5 tanks` takes "--limit" as the text): the
    /// user meant an option this command does not have. Values after `--` are taken literally.
    /// </summary>
    private static string? OptionLikeArgument(ParseResult parse)
    {
        var tokens = parse.Tokens.ToList();
        var literalFrom = tokens.FindIndex(t => t.Type == TokenType.DoubleDash);
        if (literalFrom < 0) literalFrom = tokens.Count;
        var early = tokens.Take(literalFrom).Where(t => t.Type == TokenType.Argument).Select(t => t.Value).ToHashSet();
        return parse.CommandResult.Children.OfType<ArgumentResult>()
            .SelectMany(a => a.Tokens).Select(t => t.Value)
            .FirstOrDefault(v => LooksLikeOption(v) && early.Contains(v));
    }

    /// <summary>"-x" or "--name", not a negative number or "-" (standard input).</summary>
    private static bool LooksLikeOption(string token) => OptionShape().IsMatch(token);

    [GeneratedRegex("^--?[A-Za-z]")]
    private static partial Regex OptionShape();

    private static bool NeedsSubcommand(Command command) => command.Action is null && command.Subcommands.Count > 0;

    private static string CommandName(CommandResult command)
    {
        var names = new List<string>();
        for (var c = command; c?.Parent is not null; c = c.Parent as CommandResult) names.Insert(0, c.Command.Name);
        return string.Join(' ', names);
    }

    private static string CommandPath(CommandResult command) => command.Parent is null ? Program : $"{Program} {CommandName(command)}";

    private static bool Converts(string value, Type type) => Type.GetTypeCode(type) switch
    {
        TypeCode.Int16 or TypeCode.Int32 or TypeCode.Int64 => long.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out _),
        TypeCode.Single or TypeCode.Double or TypeCode.Decimal => double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out _),
        TypeCode.Boolean => bool.TryParse(value, out _),
        _ => !type.IsEnum || Enum.TryParse(type, value, ignoreCase: true, out _),
    };

    private static string Kind(Type type) => Type.GetTypeCode(type) switch
    {
        TypeCode.Int16 or TypeCode.Int32 or TypeCode.Int64 => "a whole number",
        TypeCode.Single or TypeCode.Double or TypeCode.Decimal => "a number",
        TypeCode.Boolean => "true or false",
        _ when type.IsEnum => "one of: " + string.Join(", ", Enum.GetNames(type).Select(n => n.ToLowerInvariant())),
        _ => "a valid value",
    };

    /// <summary>The values an option accepts when it was restricted with AcceptOnlyFromAmong (they are its completions).</summary>
    private static List<string> Choices(Option option) =>
        option.GetCompletions(CompletionContext.Empty).Select(c => c.Label).ToList();

    private static string Sentence(string description) => OneLine(description).TrimEnd('.');

    private static string OneLine(string message) => Whitespace().Replace(message, " ").Trim();

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();
}
