package io.jmigrate;

import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.ImportOption;
import com.tngtech.archunit.lang.ArchRule;
import com.tngtech.archunit.lang.CompositeArchRule;
import com.tngtech.archunit.lang.EvaluationResult;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.SequencedMap;
import java.util.Set;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.classes;
import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * The package table of ARCHITECTURE.md ("Packages (root io.jmigrate; dependencies only point down
 * this list)") as rules over the compiled main classes: each package may depend only on itself and
 * on the packages its row lists, every class lives in a package of the table, {@code common}
 * depends on the JDK only, and nothing depends on the JMH benchmarks (their own source set,
 * {@code io.jmigrate.bench.jmh}, compiled into the main classes only by {@code -Pbench}).
 *
 * <p>When the table in ARCHITECTURE.md changes, change {@link #TABLE} with it, row for row.
 */
class LayeringTest {
    private static final String ROOT = "io.jmigrate";
    private static final String JMH = ROOT + ".bench.jmh..";

    /** The table, top to bottom: package → the packages it may depend on (besides itself). */
    static final SequencedMap<String, Set<String>> TABLE = table();

    private static SequencedMap<String, Set<String>> table() {
        SequencedMap<String, Set<String>> t = new LinkedHashMap<>();
        t.put("common", Set.of());
        t.put("stream", Set.of("common"));
        t.put("memory", Set.of("common"));
        t.put("channel", Set.of("stream", "common"));
        t.put("vmstate", Set.of("stream", "common"));
        t.put("savevm", Set.of("stream", "vmstate", "common"));
        t.put("multifd", Set.of("channel", "stream", "memory", "common"));
        t.put("ram", Set.of("savevm", "multifd", "memory", "stream", "common"));
        t.put("devstate", Set.of("savevm", "multifd", "common"));
        t.put("vfio", Set.of("savevm", "vmstate", "devstate", "stream", "common"));
        t.put("analyze", Set.of("vfio", "ram", "savevm", "multifd", "vmstate", "stream", "common"));
        t.put("migration", above(t)); // "all above"
        t.put("machine", above(t)); // "migration and below"
        t.put("qmp", Set.of("machine", "migration", "common"));
        t.put("bench", Set.of("qmp", "common"));
        t.put("cli", above(t)); // "everything"
        return t;
    }

    /** Every package already in the table (the rows above the one being added). */
    private static Set<String> above(SequencedMap<String, Set<String>> t) {
        return Set.copyOf(t.keySet());
    }

    private static JavaClasses main;

    @BeforeAll
    static void importMainClasses() {
        main = new ClassFileImporter()
                .withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_TESTS)
                .withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_JARS)
                .importPackages(ROOT);
    }

    private static String pkg(String name) {
        return ROOT + "." + name + "..";
    }

    /** One rule per row (a package uses only itself and its row), plus the table-wide rules. */
    static List<ArchRule> rules(SequencedMap<String, Set<String>> table) {
        List<ArchRule> rules = new ArrayList<>();
        for (Map.Entry<String, Set<String>> row : table.entrySet()) {
            String p = row.getKey();
            for (String allowed : row.getValue()) {
                if (!table.containsKey(allowed)) {
                    throw new IllegalArgumentException("row " + p + " names " + allowed + ", not in the table");
                }
            }
            List<String> forbidden = new ArrayList<>();
            for (String other : table.keySet()) {
                if (!other.equals(p) && !row.getValue().contains(other)) {
                    forbidden.add(pkg(other));
                }
            }
            if (forbidden.isEmpty()) {
                continue; // cli: everything
            }
            rules.add(noClasses().that().resideInAPackage(pkg(p)).and().resideOutsideOfPackage(JMH)
                    .should().dependOnClassesThat().resideInAnyPackage(forbidden.toArray(String[]::new))
                    .because("ARCHITECTURE.md: " + p + " may depend only on "
                            + (row.getValue().isEmpty() ? "the JDK" : String.join(", ", new java.util.TreeSet<>(row.getValue()))))
                    .allowEmptyShould(true)); // devstate and vfio have no classes yet
        }
        Set<String> all = new LinkedHashSet<>();
        table.keySet().forEach(p -> all.add(pkg(p)));
        rules.add(classes().that().resideInAPackage(ROOT + "..").should().resideInAnyPackage(all.toArray(String[]::new))
                .because("every package must have a row in ARCHITECTURE.md's table"));
        rules.add(noClasses().that().resideOutsideOfPackage(JMH).should().dependOnClassesThat().resideInAPackage(JMH)
                .because("ARCHITECTURE.md: nothing depends on the JMH source set"));
        rules.add(classes().that().resideInAPackage(pkg("common"))
                .should().onlyDependOnClassesThat().resideInAnyPackage("java..", pkg("common"))
                .because("ARCHITECTURE.md: common depends on the JDK only"));
        return rules;
    }

    @Test
    void everyPackageDependsOnlyOnWhatItsRowAllows() {
        assertThat(main.size()).as("main classes imported").isGreaterThan(50);
        CompositeArchRule.of(rules(TABLE)).check(main);
    }

    @Test
    void theTableListsEveryPackageOfTheCodeAndOnlyPointsDown() {
        Set<String> inCode = new java.util.TreeSet<>();
        main.forEach(c -> {
            String p = c.getPackageName();
            if (p.startsWith(ROOT + ".") && !p.startsWith(ROOT + ".bench.jmh")) {
                inCode.add(p.substring(ROOT.length() + 1).replaceAll("\\..*$", ""));
            }
        });
        assertThat(TABLE.keySet()).containsAll(inCode);
        List<String> order = new ArrayList<>(TABLE.keySet());
        TABLE.forEach((p, deps) -> deps.forEach(d -> assertThat(order.indexOf(d)).as(p + " -> " + d)
                .isLessThan(order.indexOf(p))));
    }

    /** The rules do catch an upward import: with qmp → machine struck from the table, QmpDispatcher fails. */
    @Test
    void aClassImportingAPackageAboveItsRowFails() {
        SequencedMap<String, Set<String>> stricter = new LinkedHashMap<>(TABLE);
        stricter.put("qmp", Set.of("migration", "common"));
        EvaluationResult r = CompositeArchRule.of(rules(stricter)).evaluate(main);
        assertThat(r.hasViolation()).isTrue();
        assertThat(String.join("\n", r.getFailureReport().getDetails()))
                .contains("io.jmigrate.qmp.QmpDispatcher", "io.jmigrate.machine.Vm");
    }
}
