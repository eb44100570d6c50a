"""The dump splitter on the output shapes of mysqldump 9.7 and mariadb-dump 10.11 (pure)."""

from __future__ import annotations

from mysql_operator.backup.dumpsplit import DumpSplitter, Phase, Piece

# Trimmed from a real `mysqldump --single-transaction --routines --events --triggers --source-data=2
# --set-gtid-purged=ON --databases a b` of MySQL 9.7: a row value holding a marker and an INSERT, a
# trigger, a view, an event, a procedure whose body holds an INSERT and an UNLOCK TABLES.
MYSQL_DUMP = b"""-- MySQL dump 10.13  Distrib 9.7.4, for Linux (x86_64)
--
/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
/*!50503 SET NAMES utf8mb4 */;
/*!40014 SET @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, FOREIGN_KEY_CHECKS=0 */;
SET @MYSQLDUMP_TEMP_LOG_BIN = @@SESSION.SQL_LOG_BIN;
SET @@SESSION.SQL_LOG_BIN= 0;

--
-- GTID state at the beginning of the backup
--

SET @@GLOBAL.GTID_PURGED=/*!80000 '+'*/ '67bc1af1-ed35-11f1-a4cb-02fc00000001:1-10,
7a1b2c3d-ed35-11f1-a4cb-02fc00000002:1-3';

-- CHANGE REPLICATION SOURCE TO SOURCE_LOG_FILE='mysql-bin.000001', SOURCE_LOG_POS=2653;

--
-- Current Database: `a`
--

CREATE DATABASE /*!32312 IF NOT EXISTS*/ `a`;

USE `a`;

--
-- Table structure for table `t`
--

DROP TABLE IF EXISTS `t`;
CREATE TABLE `t` (
  `id` int NOT NULL,
  PRIMARY KEY (`id`)
) ENGINE=InnoDB;

--
-- Dumping data for table `t`
--

LOCK TABLES `t` WRITE;
/*!40000 ALTER TABLE `t` DISABLE KEYS */;
INSERT INTO `t` VALUES (1,'x\\n-- Dumping data for table `zz`\\nINSERT INTO `t` VALUES (9)',1),(2,'y',2);
INSERT INTO `t` VALUES (3,'z;',3);
/*!40000 ALTER TABLE `t` ENABLE KEYS */;
UNLOCK TABLES;
/*!50003 SET @saved_sql_mode       = @@sql_mode */ ;
DELIMITER ;;
/*!50003 CREATE*/ /*!50003 TRIGGER `trg` BEFORE INSERT ON `t` FOR EACH ROW SET NEW.n = NEW.n + 100 */;;
DELIMITER ;
/*!50003 SET sql_mode              = @saved_sql_mode */ ;

--
-- Temporary view structure for view `vw`
--

/*!50001 CREATE VIEW `vw` AS SELECT
 1 AS `id`*/;

--
-- Dumping events for database 'a'
--
/*!50106 SET @save_time_zone= @@TIME_ZONE */ ;
DELIMITER ;;
/*!50106 CREATE*/ /*!50106 EVENT `ev` ON SCHEDULE EVERY 1 DAY DO DELETE FROM a.t WHERE id > 1000 */ ;;
DELIMITER ;
/*!50106 SET TIME_ZONE= @save_time_zone */ ;

--
-- Dumping routines for database 'a'
--
/*!50003 DROP PROCEDURE IF EXISTS `p` */;
DELIMITER ;;
CREATE DEFINER=`root`@`%` PROCEDURE `p`()
BEGIN
-- Dumping data for table `t`
INSERT INTO `t` VALUES (99, 'p', 0);
UNLOCK TABLES;
END ;;
DELIMITER ;

--
-- Current Database: `b`
--

CREATE DATABASE /*!32312 IF NOT EXISTS*/ `b`;

USE `b`;

--
-- Dumping data for table `u`
--

LOCK TABLES `u` WRITE;
INSERT INTO `u` VALUES (1,1);
UNLOCK TABLES;

--
-- Dumping events for database 'b'
--

--
-- Dumping routines for database 'b'
--
SET @@SESSION.SQL_LOG_BIN = @MYSQLDUMP_TEMP_LOG_BIN;

-- Dump completed on 2026-12-01  3:15:06
"""

# mariadb-dump 10.11: its sandbox-mode first line, one row per line.
MARIADB_DUMP = b"""/*M!999999\\- enable the sandbox mode */
-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)
/*!40101 SET NAMES utf8mb4 */;
/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;
-- CHANGE MASTER TO MASTER_LOG_FILE='mysql-bin.000001', MASTER_LOG_POS=2384;

--
-- Current Database: `a`
--

CREATE DATABASE /*!32312 IF NOT EXISTS*/ `a`;

USE `a`;

--
-- Dumping data for table `t`
--

LOCK TABLES `t` WRITE;
/*!40000 ALTER TABLE `t` DISABLE KEYS */;
INSERT INTO `t` VALUES
(1,'x\\n-- Dumping data for table `zz`\\nINSERT INTO `t` VALUES (9)',1),
(2,'y;',2);
/*!40000 ALTER TABLE `t` ENABLE KEYS */;
UNLOCK TABLES;
DELIMITER ;;
/*!50003 CREATE*/ /*!50003 TRIGGER a.trg BEFORE INSERT ON a.t FOR EACH ROW SET NEW.n = NEW.n + 100
*/;;
DELIMITER ;

--
-- Dumping events for database 'a'
--

--
-- Dumping routines for database 'a'
--

-- SET GLOBAL gtid_slave_pos='0-10-10';
/*!40111 SET SQL_NOTES=@OLD_SQL_NOTES */;
"""


def split(dump: bytes) -> tuple[DumpSplitter, list[Piece]]:
    splitter = DumpSplitter()
    return splitter, list(splitter.split(dump.splitlines(keepends=True)))


def text(pieces: list[Piece], phase: Phase) -> bytes:
    return b"".join(p.text for p in pieces if p.phase is phase)


def test_every_byte_of_the_dump_lands_in_exactly_one_phase_in_order() -> None:
    for dump in (MYSQL_DUMP, MARIADB_DUMP):
        _, pieces = split(dump)
        assert b"".join(p.text for p in pieces) == dump


def test_mysql_rows_are_whole_statements_with_their_database() -> None:
    _, pieces = split(MYSQL_DUMP)
    rows = [p for p in pieces if p.phase is Phase.DATA]
    assert [(p.use, p.text[:25]) for p in rows] == [
        (b"USE `a`;\n", b"INSERT INTO `t` VALUES (1"),
        (b"USE `a`;\n", b"INSERT INTO `t` VALUES (3"),
        (b"USE `b`;\n", b"INSERT INTO `u` VALUES (1"),
    ]
    assert all(p.text.endswith(b";\n") and p.text.count(b"\n") == 1 for p in rows)


def test_mariadb_rows_span_lines_up_to_the_semicolon() -> None:
    _, pieces = split(MARIADB_DUMP)
    rows = [p for p in pieces if p.phase is Phase.DATA]
    assert len(rows) == 1
    assert rows[0].text.startswith(b"INSERT INTO `t` VALUES\n(1,")
    assert rows[0].text.endswith(b"(2,'y;',2);\n")


def test_triggers_and_events_wait_for_the_rows_and_routines_do_not() -> None:
    for dump in (MYSQL_DUMP, MARIADB_DUMP):
        _, pieces = split(dump)
        deferred, schema = text(pieces, Phase.DEFERRED), text(pieces, Phase.SCHEMA)
        assert b"TRIGGER" in deferred and b"TRIGGER" not in schema
        assert deferred.count(b"DELIMITER ;;") == deferred.count(b"DELIMITER ;\n")
        assert b"CREATE TABLE" not in deferred and b"INSERT INTO `t` VALUES (1" not in schema
    _, pieces = split(MYSQL_DUMP)
    deferred, schema = text(pieces, Phase.DEFERRED), text(pieces, Phase.SCHEMA)
    assert b"EVENT `ev`" in deferred and b"SET TIME_ZONE= @save_time_zone" in deferred
    # a routine body's INSERT, UNLOCK TABLES and marker are its own text, not rows or section ends
    assert b"PROCEDURE `p`()\nBEGIN\n-- Dumping data for table `t`\nINSERT INTO `t` VALUES (99" in schema
    assert b"CREATE VIEW `vw`" in schema and b"Dumping routines for database 'a'" in schema


def test_the_preamble_is_the_session_settings_without_the_global_gtid_state() -> None:
    splitter, _ = split(MYSQL_DUMP)
    assert splitter.preamble == [
        b"/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;\n",
        b"/*!50503 SET NAMES utf8mb4 */;\n",
        b"/*!40014 SET @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, FOREIGN_KEY_CHECKS=0 */;\n",
        b"SET @MYSQLDUMP_TEMP_LOG_BIN = @@SESSION.SQL_LOG_BIN;\n",
        b"SET @@SESSION.SQL_LOG_BIN= 0;\n",
    ]
    _, pieces = split(MYSQL_DUMP)
    assert b"SET @@GLOBAL.GTID_PURGED" in text(pieces, Phase.SCHEMA)  # once, in the schema session
    splitter, _ = split(MARIADB_DUMP)
    assert splitter.preamble == [
        b"/*M!999999\\- enable the sandbox mode */\n",
        b"/*!40101 SET NAMES utf8mb4 */;\n",
        b"/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;\n",
    ]


def test_a_dump_without_rows_is_all_schema() -> None:
    dump = b"-- header\n/*!40101 SET NAMES utf8mb4 */;\nUSE `mysql`;\n-- Dump completed\n"
    _, pieces = split(dump)
    assert {p.phase for p in pieces} == {Phase.SCHEMA}
